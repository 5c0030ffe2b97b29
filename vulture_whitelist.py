"""Names vulture cannot see used: called by frameworks, by name, or part of the public API.

`make check` runs `vulture src vulture_whitelist.py --min-confidence 80`; list a name here (as an
attribute access or a bare name) only when it is used in a way vulture cannot follow."""

# Module-level __getattr__ (PEP 562): the package's lazy public names.
__getattr__  # noqa: B018
