# test_http: see test_http.c (needs python3 for the ITX emulator; openssl(1) for the TLS case)
mb_unit_test(test_http SOURCES test_http.c itx_emu.c LIBS mb_http)
