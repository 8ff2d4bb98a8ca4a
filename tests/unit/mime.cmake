# test_mime: see test_mime.c
if(TARGET mb_mime)
  mb_unit_test(test_mime SOURCES test_mime.c LIBS mb_mime mb_lib)
endif()
