"""The workbook: the student writes the backward passes, nnscratch grades them and trains
with them (``docs/workbook.md``).

- :mod:`~nnscratch.workbook.exercises`: the catalogue, in the book's order: each exercise's
  stub (signature, shapes, equation labels), its inputs and its gradient check, and
  :func:`~nnscratch.workbook.exercises.start`, which writes the student's files;
- :mod:`~nnscratch.workbook.reference`: the library's implementations with the stubs'
  signatures, what the grader compares with;
- :mod:`~nnscratch.workbook.grader`: imports the student's files, runs each exercise with a
  time limit and prints the table;
- :mod:`~nnscratch.workbook.plug`: puts the student's right functions in place of the
  library's for one training run, and takes them out again.
"""
