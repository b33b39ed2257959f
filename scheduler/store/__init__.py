"""The customer store: tables, engines, schema migrations and the checks around them."""
