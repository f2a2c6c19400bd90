// Entry-state builders for every way tsvmm starts a guest CPU; see entry.ts.
export { BOOT_LAYOUT } from './layout.ts';
export { SELECTOR, codeSegment, dataSegment, tssSegment, unusableLdt, encodeDescriptor, writeGdt, type CpuMode } from './gdt.ts';
export { writeIdentityPageTables, type PageTableOptions } from './page-tables.ts';
export {
  enter32, enter64, enterPvh, zeroRegs,
  CR0_PE, CR0_ET, CR0_PG, CR4_PAE, EFER_LME, EFER_LMA, RFLAGS_RESERVED, APIC_BASE_BSP,
  type EntryState, type Enter32Options, type Enter64Options, type EnterPvhOptions,
} from './entry.ts';
