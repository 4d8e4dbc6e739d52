"""Known log line formats, each an exactly reversible split into streams: web access logs
(Common/Combined Log Format) and tab-separated logs (Zeek).
"""
