//! Helpers shared by nanorun's end-to-end tests: locating the repo, its data and `../shared`.
