"""``python -m s3stow``: the same entry point as the ``s3stow`` console script."""

from s3stow.cli.app import main

if __name__ == "__main__":
    main()
