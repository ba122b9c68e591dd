"""HTTP plumbing every handler shares: errors and problem details, auth, middleware, caching, bodies."""
