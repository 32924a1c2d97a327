// The layer_link_* executables (src/CMakeLists.txt): one layer's library linked whole-archive
// against only the libraries that layer may use, so that a call across the layers fails to link.
// They are never run.
int main() { return 0; }
