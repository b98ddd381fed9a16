"""The web console at ``/console``: a page and its scripts, served as files. Everything it
shows comes from the JSON API, with the key the user signed in with (kept in the browser)."""
