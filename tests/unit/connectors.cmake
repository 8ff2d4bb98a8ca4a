# test_itx: see test_itx.c (the registry, the mail JSON schema and the ITX
# connector against tests/emulators/itx_emulator.py; needs python3)
mb_unit_test(test_itx SOURCES test_itx.c itx_emu.c LIBS mb_connectors PkgConfig::JSONC)
