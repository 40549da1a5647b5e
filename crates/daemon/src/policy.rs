//! Policy files: `workloads.d/*.toml`, each with `[[workload]]` tables. Owned by the policy
//! work package.
