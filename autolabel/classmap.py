class ClassMap: pass
