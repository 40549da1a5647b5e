//! The wake-up sources of the reconcile loop: the netlink proc connector, pidfds, inotify on
//! `cgroup.events` and the policy directory. Owned by the events work package.
