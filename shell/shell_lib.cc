// Anchor source for the shared library; the code is in npa_shell_core.
