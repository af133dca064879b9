"""``kdnlu data``: fetch the GLUE benchmark's files into the official layout and verify them."""
