//! Queue tools: list, stat, show
