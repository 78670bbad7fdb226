"""Errors raised by the protocol and format core."""


class LinkError(ValueError):
    """A share link or proxy entry that cannot be turned into a node.

    The message is a short reason, such as "invalid port 70000: must be 1-65535", that is shown
    to users next to the line number of the rejected entry.
    """


class UnsupportedNode(ValueError):
    """A node that an export target cannot express, such as ssr in sing-box."""


class DecodeError(ValueError):
    """A subscription body that is not in any known format, such as an HTML page."""
