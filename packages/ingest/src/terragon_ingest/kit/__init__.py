"""Generic helpers that know no domain (HTTP plumbing, JSON responses). Never imports a domain."""
