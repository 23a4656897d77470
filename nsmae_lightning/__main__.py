"""`python -m nsmae_lightning ...` runs the `nsmae` CLI (used on machines where the package is not installed)."""

from nsmae_lightning.cli import main

if __name__ == "__main__":
    main()
