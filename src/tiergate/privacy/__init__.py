"""Privacy: request levels, which locations each level may reach (detection comes later)."""
