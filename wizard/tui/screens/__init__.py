"""One screen per module: the six steps (verify is shown by ``done``), welcome, and the modals."""
