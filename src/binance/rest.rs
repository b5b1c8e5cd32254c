//! The REST client on ureq: klines, server time, rate limits and retries (STUB).
