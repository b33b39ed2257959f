"""`python -m scheduler` runs the same command line as `appreciate`."""

from scheduler.cli.app import main

if __name__ == "__main__":
    main()
