//! Events and deliveries as the rest of hookgate sees them, whichever backend keeps them.
