"""Reads for the pages and the API: one module per page, each returning what its template needs.

Every page reads a fixed number of queries whatever the data size: summary columns, denormalised
pointers and bounded slices; nothing here counts TestResult rows. Writes live in ``sessions.services``
and ``sessions.work``; query strings are parsed in ``sessions.forms``; text formatting is done by the
template filters in ``sessions.templatetags``. Import a name from the module that defines it.
"""
