"""The write flows every resource shares: idempotency, references, create/update/delete."""
