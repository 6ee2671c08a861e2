"""Interchangeable image transports behind one interface (see :mod:`wizard.core.transports.base`)."""
