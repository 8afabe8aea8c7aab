"""python -m sweeplab"""

from sweeplab.cli.main import entry

if __name__ == "__main__":
    entry()
