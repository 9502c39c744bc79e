int tf_probe(void) { return 7; }
