// The translation unit that compiles a precompiled header (cmake/npa.cmake,
// NPA_PCH). It has no code of its own.
