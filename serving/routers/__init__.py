"""One router per module plus the platform's own (health, tenant admin, usage, industries)."""
