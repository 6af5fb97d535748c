-- Rate-limit windows and blocks, shared by every server process on the database
-- (server/auth/ratelimit.py: DatabaseLimiter). Times are epoch milliseconds: the rule does
-- arithmetic on them, and nothing outside the limiter reads them.
CREATE TABLE rate_limits (
    limit_key TEXT PRIMARY KEY, hits TEXT NOT NULL, blocked_until_ms INTEGER,
    keep_until_ms INTEGER NOT NULL);
CREATE INDEX rate_limits_keep ON rate_limits(keep_until_ms);
