"""Reports of need and impact (CONTRACT.md "Reports").

Where things are:
- `disclosure` — the disclosure control every figure passes through before it
  leaves the server (suppression of small counts, secondary suppression,
  rounding); pure, no database.
"""
