"""Lifecycle: the scheduler and the list of periodic jobs. The jobs belong to their domains
(the daemon-event sweep, the archive's rollup and retention, the partitions of `db/`); this
package only paces them, so it may import the domains and no domain imports it."""
