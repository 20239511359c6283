"""Bridges to other projects' frameworks (lmms-eval). Each one is imported only by that framework
or by the command that writes its files, never by the rest of the package."""
