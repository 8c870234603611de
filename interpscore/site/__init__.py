"""``interpscore site``: a static leaderboard web site that opens from disk, offline.

``data`` turns reports into the one JSON object the page embeds (a pure function),
``render`` writes the HTML, script and style sheet, ``command`` is the CLI glue. The page
itself (``assets/site.js``) draws the table, the plots, a page per SAE and the editable
formula, recomputing scores exactly as ``interpscore score`` does.
"""
