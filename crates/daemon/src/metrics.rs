//! Prometheus metrics (`nearnative_*`) on a loopback HTTP responder. Owned by the metrics
//! work package.
