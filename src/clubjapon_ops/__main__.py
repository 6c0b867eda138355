"""Allow ``python -m clubjapon_ops``."""

from clubjapon_ops.cli import main

if __name__ == "__main__":
    main()
