"""python -m sweeplab"""

from sweeplab.cli.main import main

if __name__ == "__main__":
    main()
