//! The few Win32 calls the tools need where POSIX has a mode bit or a signal: a secret file's
//! access list (the current user alone, nothing inherited: what mode 0600 says on Unix), reading
//! that list back as SDDL, and Ctrl-C / Ctrl-Break as a counter (what SIGINT is on Unix). All
//! `unsafe` for Windows lives here, each call with what it relies on.

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetFileSecurityW, GetTokenInformation, SetFileSecurityW, TokenUser, DACL_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetFileType, GetFinalPathNameByHandleW, FILE_NAME_NORMALIZED, FILE_TYPE_CHAR, VOLUME_NAME_DOS,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT, STD_INPUT_HANDLE,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain(std::iter::once(0)).collect()
}

/// A NUL-terminated UTF-16 string Windows allocated with `LocalAlloc`, as a `String`, freed.
///
/// SAFETY: `text` is null or a NUL-terminated string from `LocalAlloc` that nothing else frees.
unsafe fn take_local_string(text: *mut u16) -> String {
    if text.is_null() {
        return String::new();
    }
    let mut len = 0;
    while *text.add(len) != 0 {
        len += 1;
    }
    let owned = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
    LocalFree(text.cast());
    owned
}

/// The current user's SID as a string (`S-1-5-21-…`).
pub(crate) fn current_user_sid() -> std::io::Result<String> {
    // SAFETY: the token handle is ours and closed below; the buffer is sized by the first
    // GetTokenInformation call and outlives the TOKEN_USER read from it.
    unsafe {
        let mut token: HANDLE = std::ptr::null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut needed = 0u32;
        GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut needed);
        // u64s, so the buffer is aligned for TOKEN_USER.
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8).max(1)];
        let got = GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            needed,
            &mut needed,
        );
        let error = std::io::Error::last_os_error();
        CloseHandle(token);
        if got == 0 {
            return Err(error);
        }
        let user = &*(buffer.as_ptr() as *const TOKEN_USER);
        let mut text: *mut u16 = std::ptr::null_mut();
        if ConvertSidToStringSidW(user.User.Sid, &mut text) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(take_local_string(text))
    }
}

/// Gives `path` an access list with one entry, full control for the current user, and no
/// inherited entries (a protected DACL): no other account, Administrators included, is
/// granted anything by the file itself. A directory's entry is inherited by what is created
/// in it (`OICI`), so a file made there by other means starts private too.
pub(crate) fn restrict_to_current_user(path: &Path) -> std::io::Result<()> {
    let sddl = crate::state::private_sddl(&current_user_sid()?, path.is_dir());
    // SAFETY: both strings are NUL-terminated and live across the calls; the descriptor
    // Windows allocates is freed with LocalFree once SetFileSecurityW has copied it.
    unsafe {
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            wide(OsStr::new(&sddl)).as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let set = SetFileSecurityW(
            wide(path.as_os_str()).as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            descriptor,
        );
        let error = std::io::Error::last_os_error();
        LocalFree(descriptor);
        if set == 0 {
            return Err(error);
        }
    }
    Ok(())
}

/// The access list of `path` as SDDL (`D:P(A;;FA;;;S-1-5-…)`), read back from the file.
pub(crate) fn access_list(path: &Path) -> std::io::Result<String> {
    let name = wide(path.as_os_str());
    // SAFETY: the buffer is sized by the first call; the SDDL string Windows allocates is
    // taken and freed by take_local_string.
    unsafe {
        let mut needed = 0u32;
        GetFileSecurityW(
            name.as_ptr(),
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            0,
            &mut needed,
        );
        if needed == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
        if GetFileSecurityW(
            name.as_ptr(),
            DACL_SECURITY_INFORMATION,
            buffer.as_mut_ptr().cast(),
            needed,
            &mut needed,
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let mut text: *mut u16 = std::ptr::null_mut();
        if ConvertSecurityDescriptorToStringSecurityDescriptorW(
            buffer.as_mut_ptr().cast(),
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(take_local_string(text))
    }
}

/// The path an open file really has (`\\?\C:\…`, links at any depth resolved), as
/// `std::fs::canonicalize` writes it: what was opened, whatever the name went through.
pub(crate) fn final_path(file: &std::fs::File) -> std::io::Result<std::path::PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use std::os::windows::io::AsRawHandle;
    let handle = file.as_raw_handle() as HANDLE;
    let mut buffer = vec![0u16; 512];
    loop {
        // SAFETY: the buffer's length is passed with it; the handle is the open file's.
        let len = unsafe {
            GetFinalPathNameByHandleW(
                handle,
                buffer.as_mut_ptr(),
                buffer.len() as u32,
                FILE_NAME_NORMALIZED | VOLUME_NAME_DOS,
            )
        } as usize;
        if len == 0 {
            return Err(std::io::Error::last_os_error());
        }
        if len < buffer.len() {
            buffer.truncate(len);
            return Ok(std::ffi::OsString::from_wide(&buffer).into());
        }
        // Too small: `len` is the size needed, terminating NUL included.
        buffer.resize(len, 0);
    }
}

/// Whether stdin is a character device (the console, `NUL`) or absent: nothing piped in, as
/// `/dev/null` and a terminal are on Unix.
pub(crate) fn stdin_is_device_or_absent() -> bool {
    // SAFETY: GetStdHandle returns the process's own handle (not owned by us, not closed);
    // GetFileType only reads its type.
    unsafe {
        let handle = GetStdHandle(STD_INPUT_HANDLE);
        handle.is_null() || handle == INVALID_HANDLE_VALUE || GetFileType(handle) == FILE_TYPE_CHAR
    }
}

unsafe extern "system" fn on_ctrl(kind: u32) -> BOOL {
    if kind == CTRL_C_EVENT || kind == CTRL_BREAK_EVENT {
        crate::interrupt::raise();
        1
    } else {
        // Closing the console or logging off: the default (the process ends).
        0
    }
}

/// Starts counting Ctrl-C and Ctrl-Break instead of dying of them.
pub(crate) fn catch_ctrl() {
    // SAFETY: registers a handler that only adds to an atomic.
    unsafe {
        SetConsoleCtrlHandler(Some(on_ctrl), 1);
    }
}

/// Gives Ctrl-C back its default.
pub(crate) fn release_ctrl() {
    // SAFETY: removes the handler `catch_ctrl` added.
    unsafe {
        SetConsoleCtrlHandler(Some(on_ctrl), 0);
    }
}
