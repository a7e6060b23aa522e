"""One domain function per saga step. Each locks the order's row first, so two calls of the same
step (a retry, a duplicate delivery) or a step and its compensation never interleave, and each
writes its change and its saga_log row in one transaction."""
