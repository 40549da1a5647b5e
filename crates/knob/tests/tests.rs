//! The knobs against a hand-made tree (edge cases the full round trips in nearnative-apply do
//! not reach) and, as root, against this machine on threads the tests spawn.

mod live;
mod parsers;
mod tree;
mod tree_v2;
