"""`python -m scheduler` runs the same command line as `appreciate`."""

from scheduler.cli import main

if __name__ == "__main__":
    main()
