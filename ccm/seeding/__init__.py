"""``ccm seed``: a realistic workspace of N made-up people, for trying segments and campaigns and
for the benchmarks (see :mod:`ccm.seeding.service`)."""
