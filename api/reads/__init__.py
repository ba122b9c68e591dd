"""What every list read shares: filters, keyset pagination, the list response."""
