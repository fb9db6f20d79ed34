"""``python -m imface`` (and ``torchrun -m imface``) runs the CLI."""
from imface.cli.main import main

if __name__ == "__main__":
    main()
