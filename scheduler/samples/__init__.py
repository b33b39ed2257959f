"""Sample CSV exports for `appreciate demo` and the README (fictional people)."""
