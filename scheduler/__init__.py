"""appreciate: automatic, personal thank-you notes for the customers who matter most."""

__version__ = "0.1.0"
