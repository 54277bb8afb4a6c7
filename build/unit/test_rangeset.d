build/unit/test_rangeset: pagemap/rangeset.h
