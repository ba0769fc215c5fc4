unsigned long uk_mix(unsigned long x);
