"""The package version, in a leaf module so that any module can name it without importing the package's API."""

__version__ = "0.1.0"
