"""The web edge: studio pages, admin, video cards and status, progress endpoints, operators'
pages and the commands that compose several apps. Nothing below imports it."""
