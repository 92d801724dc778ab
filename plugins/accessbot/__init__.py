"""The core library of the access bot (see ARCHITECTURE.md); it never imports errbot."""

from .pyversion import require_python

require_python()  # before any module that needs a newer Python (datetime.UTC) is imported
