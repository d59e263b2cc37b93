"""Running a method: the one loop (:mod:`.loop`), the run directory format (:mod:`.rundir`),
starting (:mod:`.launch`), resuming (:mod:`.resume`), Ray islands (:mod:`.islands`), and the
log sinks (:mod:`.sinks`). Kept free of imports so that methods can use the loop."""
